"""Honest evaluation in price units: series types (series), the baselines, forecasters, metrics
with calibration and significance, the trading rule, report, plots, another lake, and the
evaluate stage itself (run). Imports finmoirai.training and finmoirai.data below it."""
