"""The Fleet tab: targets, what runs on them, and the queue (the Qt side of :mod:`lora_studio.fleet`).

- :mod:`.dispatcher` - sends queued runs while the app is open (a timer, passes in workers);
- :mod:`.queue_model` - the queue as a table model;
- :mod:`.fleet_page` - the page: targets with their GPUs and runs, the queue with move and cancel.
"""
