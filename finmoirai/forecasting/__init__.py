"""Using what was trained: the self-contained model folder (bundle: weights, scaler, the data
recipe and statistics, the model card) and forecasts from a lake with it (forecast)."""
