"""Natural-language understanding: normalisation, segmentation, intent and knowledge retrieval, entities."""
