"""Auto-captioning from the caption grid (issue 9): the app side of ``python -m trainer label``.

The app never loads a captioning model itself: it starts the trainer's ``label`` command in
dry-run mode on the app's one job stack (:mod:`lora_studio.jobs`, detached on this computer
or a target, like training), follows the job's run folder, and applies the results as one
undo step. This package holds only what is about captions.

Layout, smallest first:

- :mod:`.captioners` - the workspace's captioning models, checked with the trainer's torch-free registry;
- :mod:`.request` - what the user asked for, the trainer's ``label`` job, the job's run folder;
- :mod:`.plan` - results vs. the captions in the grid *now*: what will change, what is kept (pure);
- :mod:`.job` - one job: its request written, its status.json and captions.jsonl read, its end in words;
- :mod:`.reattach` - a dataset's jobs to come back to (running, or results not applied); Qt-free;
- :mod:`.reattach_bar` - the bar above the grid that offers such a job;
- :mod:`.preview_model` - the preview table's item model;
- :mod:`.settings_panel` - the dialog's settings, with the "Run on" list of :mod:`lora_studio.jobs.places`;
- :mod:`.dialog` - the "Auto-caption" dialog;
- :mod:`.hook` - the "Auto-caption…" action and the job bar (the window places them), and the glue to the session.
"""
