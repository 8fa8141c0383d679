//! Brook connect: the Kafka-Connect-style runtime (see issue: brook-connect).
