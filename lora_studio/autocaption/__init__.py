"""Auto-captioning from the caption grid (issue 9): the app side of ``python -m trainer label``.

The app never loads a captioning model itself: it runs the trainer as a subprocess in
dry-run mode, follows the job's run folder, and applies the results as one undo step.

Layout, smallest first:

- :mod:`.captioners` - the workspace's captioning models, checked with the trainer's torch-free registry;
- :mod:`.request` - what the user asked for, the trainer's command line, the job's run folder;
- :mod:`.plan` - results vs. the captions in the grid *now*: what will change, what is kept (pure);
- :mod:`.launchers` - the launcher seam, and this computer (a child process of the app);
- :mod:`.remote` - a job on a saved target: paths mapped, started detached, signalled (blocking, Qt-free);
- :mod:`.watch` - a job followed through its run folder only (targets, and jobs found again);
- :mod:`.target_launcher` - the "Run on" list: this computer and every saved target;
- :mod:`.job` - one running job: its process, status.json and captions.jsonl, stop;
- :mod:`.reattach` - a dataset's jobs to come back to (running, or results not applied); Qt-free;
- :mod:`.reattach_bar` - the bar above the grid that offers such a job;
- :mod:`.preview_model` - the preview table's item model;
- :mod:`.dialog` - the "Auto-caption" dialog;
- :mod:`.hook` - the "Auto-caption…" action and the job bar (the window places them), and the glue to the session.
"""
