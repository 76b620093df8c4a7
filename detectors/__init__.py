"""The detection core: sketches, change detectors and the alert policy. Pure; no Kafka."""
