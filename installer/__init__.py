"""The parts of ``build_installer.py``: what every step shares (:mod:`.common`), the installers per OS
(:mod:`.os_packages`) and the trainer package for the GPU VMs (:mod:`.trainer_package`).

Run from the checkout (``build_installer.py`` puts it on ``sys.path``); not part of the wheel.
"""
