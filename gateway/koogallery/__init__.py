"""The KooGallery marketplace protocol, pure: no I/O, no clock of its own, no settings."""
