"""Serving processes exempt their startup objects from the garbage collector's scans."""
import gc

from app.factory import freeze_startup_objects


def test_freeze_startup_objects_exempts_what_exists_from_collection():
    try:
        frozen = freeze_startup_objects()
        assert frozen > 1000 and gc.get_freeze_count() == frozen
        assert len(gc.get_objects()) < frozen  # a full collection no longer scans them
    finally:
        gc.unfreeze()
