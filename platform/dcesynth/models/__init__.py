"""pix2pixHD networks and losses (pure nn.Modules). Built in a later issue."""
