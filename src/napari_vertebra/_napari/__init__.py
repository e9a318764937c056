"""napari glue: readers, writers and sample data that turn core objects into layers and back."""
