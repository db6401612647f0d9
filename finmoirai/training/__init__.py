"""Moirai training: the network and its scaler (module), uni2ts's Lightning tasks adapted
(tasks), and the pre-training and fine-tuning loops (loops). Imports finmoirai.data below it."""
