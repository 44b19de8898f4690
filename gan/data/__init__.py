"""Data: the datasets and the prepared format every stage shares.

- gan.data.datasets: the registry of datasets (`DATASETS`: mnist5k, faces100, photos, the 2-D mixtures,
  torchvision sets, a folder of the user's images), the split, and `prepare`, which writes the format;
- gan.data.prepared: the format itself, `load_prepared` (checked against meta.json's sha256 on each read)
  and `content_hash`. Importing `gan.data` gives the reading side only, so the stages that read the
  prepared data do not depend on the loaders' code.
"""

from gan.data.prepared import PREPARED_FILES, Prepared, content_hash, is_npz, load_prepared

__all__ = ["PREPARED_FILES", "Prepared", "content_hash", "is_npz", "load_prepared"]
