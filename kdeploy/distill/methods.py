"""The distill stage's registries: students, logit losses and layer losses.

Built-ins are declared here by name and imported on first use, so recipes validate and
`kdeploy list` runs without torch. A plugin registers with the decorators in its own module
(`register_student`, `register_loss`, `register_layer_loss`).
"""
from __future__ import annotations

from ..registry import Registry
from .families import FAMILIES

STUDENTS = Registry("student")
STUDENTS.declare("layers", "kdeploy.distill.students:layers_from_teacher",
                 "DistilBERT-style initialisation: the teacher's embeddings, head and a subset of its layers.")
for _kind in ("bilstm", "cnn", "static"):  # described once, with their family
    STUDENTS.declare(_kind, f"kdeploy.distill.students:{_kind}", FAMILIES[_kind].description)

LOSSES = Registry("loss")
LOSSES.declare("kd", "kdeploy.distill.losses:kd_loss",
               "Hinton et al.: (1-α)·CE(y, s) + α·T²·KL(softmax(t/T) ‖ softmax(s/T)).")
LOSSES.declare("logit-mse", "kdeploy.distill.losses:logit_mse_loss",
               "Ba & Caruana; Tang et al. 2019 (BERT to BiLSTM): (1-α)·CE(y, s) + α·MSE(s, t) on raw logits.")

LAYER_LOSSES = Registry("layer loss")
LAYER_LOSSES.declare("hidden", "kdeploy.distill.layer_losses:HIDDEN",
                     "MSE between mapped hidden states (a learned projection when widths differ), TinyBERT-style.")
LAYER_LOSSES.declare("attention", "kdeploy.distill.layer_losses:ATTENTION",
                     "KL between mapped layers' attention distributions (MiniLM/TinyBERT); head counts must match.")
LAYER_LOSSES.declare("embedding", "kdeploy.distill.layer_losses:EMBEDDING",
                     "MSE between the embedding layers' outputs (a learned projection when widths differ).")
