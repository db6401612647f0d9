"""The data stages: the lake (demo, synthetic, any hive-partitioned Parquet lake), extract,
preprocess, features and the uni2ts dataset builder, with the target representations they
write. Imports only finmoirai.params below it."""
