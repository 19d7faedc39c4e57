"""Training and fine-tuning: annotated subjects -> lesion-centred 2.5D patches -> a model file.

``trainer.iter_train`` is the generator behind ``deepmir train``/``finetune`` and the Fine-tune widget;
``trainer.train`` runs it to the end. Modules here import torch; import them lazily.
"""
