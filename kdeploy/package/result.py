"""What the package stage wrote."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..formats import FORMATS
from ..manifest import BundleManifest
from ..results import Result


@dataclass
class PackageResult(Result):
    bundle: str
    bundle_mib: float
    digest: str  # sha256 of bundle.json: pin it to trust exactly this bundle
    manifest: BundleManifest
    archive: str | None = None
    archive_mib: float | None = None
    kind: str = "python"
    e2e_parity: dict | None = None  # the e2e format's gate (texts compared, identical, max |Δp|)
    others: list["PackageResult"] = field(default_factory=list)  # the other formats of the same call
    title = "package"

    def table(self):
        rows = []
        for r in [self, *self.others]:
            rows.append([r.kind, r.bundle, f"{r.bundle_mib:.1f}"])
            if r.archive:
                rows.append([f"{r.kind} archive", r.archive, f"{r.archive_mib:.1f}"])
        return ["format", "path", "MiB"], rows

    def notes(self) -> list[str]:
        lines = []
        for r in [self, *self.others]:
            p = r.e2e_parity
            if p:
                what = "entities (type, start, end)" if p.get("compared") == "spans" else "tokens"
                lines.append(f"e2e gate: {what} identical on {p['identical']}/{p['texts']} texts ({p['source']}); "
                             f"max |Δp| {p['max_abs_diff']:.1e} vs the Python predictor on {p['probability_texts']}"
                             + (f"; texts with a NUL, compared up to it: {p['nul_truncated']}" if p["nul_truncated"] else ""))
            after = FORMATS[r.kind].after if r.kind in FORMATS else None
            if after:
                lines.append(after.format(bundle=r.bundle))
        return lines

    def to_dict(self) -> dict:
        return {**super().to_dict(), "manifest": self.manifest.to_dict(),
                "others": [o.to_dict() for o in self.others]}
