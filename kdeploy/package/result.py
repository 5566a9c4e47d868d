"""What the package stage wrote."""
from __future__ import annotations

from dataclasses import dataclass

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
    title = "package"

    def table(self):
        rows = [["bundle", self.bundle, f"{self.bundle_mib:.1f}"]]
        if self.archive:
            rows.append(["archive", self.archive, f"{self.archive_mib:.1f}"])
        return ["what", "path", "MiB"], rows

    def to_dict(self) -> dict:
        return {**super().to_dict(), "manifest": self.manifest.to_dict()}
