"""CLIP-IT: privileged text from an external report corpus (reference §4.2).

``source`` reads a corpus file, ``windows`` splits long reports, ``corpus``
embeds and stores them, ``pairing`` retrieves the most similar reports,
``slides`` pairs slides into their stores, ``quality`` describes a pairing,
``distill`` holds the late-fusion head and the 1 − cos losses, ``lora`` the
peft wrappers, ``patch_fit`` and ``slide_fit`` the two training paths,
``ablation`` the paired with/without comparison. Modules are imported where
used (this package imports nothing eagerly, so the trainers can import it).
"""
