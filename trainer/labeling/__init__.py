"""Auto-captioning (`python -m trainer label`): caption a dataset's images with a local model.

Layout, smallest first:

- :mod:`.args` - the command line options (stdlib only; ``trainer.cli`` builds its parser with it);
- :mod:`.merge` - how a generated caption meets an existing one (modes, trigger word; torch-free,
  so the app can preview with the same rules);
- :mod:`.errors` - input problems (exit 2) and failures (exit 1), each with what to do;
- :mod:`.model_search` - finding the workspace's captioner when ``--model`` is not given;
- :mod:`.base` - the captioner interface, load options, out-of-memory detection;
- :mod:`.registry` - the families (one file each), matching a folder and checking its files:
  :mod:`.image_to_text` (BLIP, BLIP-2, GIT, Florence-2 through transformers) and :mod:`.wd14`
  (booru-style ONNX taggers through onnxruntime);
- :mod:`.loader` - image decoding and preprocessing in worker threads, ahead of the model;
- :mod:`.job` - the labelling loop: batches, out-of-memory back-off, stop requests, results;
- :mod:`.captions_io` - reading and merging captions through :mod:`trainer.captions`;
- :mod:`.cli` - the ``label`` subcommand: checks, run directory, writing the captions;
- :mod:`.tiny` - tiny random BLIP, GIT, BLIP-2 and WD14 models for tests and benchmarks.
"""

from __future__ import annotations
