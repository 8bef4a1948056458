"""One job stack, the Qt side: a trainer command started on a target and followed through its run folder.

Every trainer command the app starts (training, auto-captioning) goes through
:func:`lora_studio.targets.api.start_job`: detached, in its run folder, with ``run.json``
saying where it runs. This package follows such a job from the UI thread, whatever the
feature: a feature adds a command, not a launcher.

- :mod:`.places` - where a job can run: this computer, then every saved target;
- :mod:`.follow` - a job known by its run folder: started in a worker, followed, stopped, released.
"""
