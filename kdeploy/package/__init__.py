"""Edge bundles: what a user copies onto a device."""
