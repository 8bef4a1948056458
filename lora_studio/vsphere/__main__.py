"""``python -m lora_studio.vsphere``: see :mod:`lora_studio.vsphere.cli`."""

from .cli import main

raise SystemExit(main())
