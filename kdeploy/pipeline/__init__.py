"""Recipes and the one stage runner behind `kdeploy run`, `kdeploy demo` and `kdeploy search`."""
from .recipe import Recipe, Step, default_recipe_path, load_recipe, recipe_from_dict
from .runner import RunResult, run_recipe

__all__ = ["Recipe", "Step", "RunResult", "default_recipe_path", "load_recipe", "recipe_from_dict", "run_recipe"]
