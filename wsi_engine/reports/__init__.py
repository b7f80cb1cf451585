"""CLIP-IT: privileged text from an external report corpus (reference §4.2).

``source`` reads a corpus file, ``windows`` splits long reports, ``corpus``
embeds and stores them, ``pairing`` retrieves the most similar reports,
``slides`` pairs slides into their stores, ``quality`` describes a pairing,
``distill`` holds the late-fusion head and the 1 − cos losses, ``lora`` the
peft wrappers, ``slide_fit`` the bag trainer's path. The package sits below
the trainers (``mil`` and ``patch`` import it; it imports neither): the patch
path and the with/without comparison are :mod:`wsi_engine.patch.privileged`
and :mod:`wsi_engine.patch.privileged_ablation`, the synthetic joint space
:mod:`wsi_engine.synthetic.joint_space`, the inputs of ``reports pair``
:mod:`wsi_engine.pipeline.pair_inputs`.
"""
