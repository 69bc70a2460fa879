"""The demo microservices: separate processes on loopback ports that export OTLP to Spyglass."""
