"""Training of the committed ``cpu`` checkpoints on the embedded data set (CPU-capable, seeded,
resumable). ``python -m baselines.training --help`` lists the commands. Modules:

- :mod:`~baselines.training.presets`: the architecture trained (proposed ``cpu`` preset fields);
- :mod:`~baselines.training.rvq`: residual k-means fit of the LMM's RVQ codebooks;
- :mod:`~baselines.training.data`: latent / token banks of the data set, batch sampling;
- :mod:`~baselines.training.diffusion`: rectified-flow losses (base, enc-dec and block-causal fine-tunes);
- :mod:`~baselines.training.lmm`: the LMM's teacher-forced cross-entropy;
- :mod:`~baselines.training.loop`: the seeded, resumable loop (AdamW, EMA, CSV log, tqdm);
- :mod:`~baselines.training.export`: float16 safetensors, config.json and SHA256SUMS;
- :mod:`~baselines.training.run`: the commands that tie them together.
"""
