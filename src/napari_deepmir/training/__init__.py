"""Training and fine-tuning: annotated subjects -> lesion-centred 2.5D patches -> a model file.

``trainer.iter_train`` is the generator behind ``deepmir train``/``finetune`` and the Fine-tune widget;
``trainer.train`` runs it to the end, then the second stage (``verifier.iter_train_verifier``). What both
share (``common``: ``TrainingConfig``, reports, subjects, validation scores) imports no torch; ``trainer``,
``checkpoint`` and ``losses`` do: import them lazily.
"""
