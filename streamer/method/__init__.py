"""The EntropyLong method as pure functions: no Kafka, no Milvus, no model loading."""
