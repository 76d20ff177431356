"""The marketplace played locally: signer, scenarios, fake open API."""
