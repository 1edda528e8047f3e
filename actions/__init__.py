"""ReviewBot custom actions (rasa-sdk imports every module in this package)."""
