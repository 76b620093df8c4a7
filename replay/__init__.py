"""Historical logs through the same detection as the workers, or re-published to Kafka."""
