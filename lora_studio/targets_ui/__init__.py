"""The Targets panel: where training runs (DESIGN.md sections 5 and 6).

The Qt side of :mod:`lora_studio.targets`. Modules, one job each:

- :mod:`.jobs` plain functions the panel runs in workers (no Qt; errors kept typed)
- :mod:`.store` the saved targets and vCenters, and the one place that writes them
- :mod:`.models` table models: targets, preflight checks, the vCenter inventory
- :mod:`.mapping_editor` the desktop path -> target path table
- :mod:`.target_dialog` add/edit a Local, SSH or vSphere target (passwords to the keyring)
- :mod:`.vcenter_dialogs` add a vCenter; show its certificate and trust it explicitly
- :mod:`.trust` the prompts: a new SSH host key, a vCenter certificate, a refused connection
- :mod:`.tables` the look of the panel's tables
- :mod:`.targets_page` / :mod:`.vsphere_page` the two tabs; :mod:`.panel` both, as one dock widget
- the vSphere tab's operations: :mod:`.new_vm_dialog` (with :mod:`.new_vm_form`) a trainer VM from a
  template, :mod:`.snapshot_panel` the selected VM's snapshots, :mod:`.cluster_view` hosts, GPUs, HA
  and DRS, :mod:`.datastore_browser` datastores through vCenter; :mod:`.vsphere_jobs` their workers
"""
