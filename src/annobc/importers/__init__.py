"""Importers: a lab's own data as task instances (``annobc import neuron|pose|tracks``).

Each importer turns real image data and its ground truth into instances of a task, written to an
import folder (:mod:`annobc.importers.common`): the images cropped or resampled onto the task's
data grid and the ground truth in the task's own terms. The task's ``instance`` parameter names an
instance file or the folder (the scene seed then picks an instance of the seed's split), so the
task's GUI, its annotator, the envs, ``annobc generate``, ``annobc serve``, training and
``annobc eval`` work on real data unchanged.

- :func:`import_neuron`: a volume (TIFF stack or zarr array) and SWC skeletons -> neuron_tracking;
- :func:`import_pose`: DeepLabCut labelled frames -> animal_limb_tracking;
- :func:`import_tracks`: a Cell Tracking Challenge folder -> cell_lineage_tracking.

This layer sits above :mod:`annobc.tasks` and :mod:`annobc.data`; it never imports torch. Its
readers (tifffile, zarr, pandas, PyTables for .h5) are the ``[import]`` extra, imported when used.
"""

from annobc.importers.common import CARD, ImportDataError
from annobc.importers.neuron import import_neuron
from annobc.importers.pose import import_pose
from annobc.importers.tracks import import_tracks

__all__ = ["CARD", "ImportDataError", "import_neuron", "import_pose", "import_tracks"]
