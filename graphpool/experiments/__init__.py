"""Cross-validated GIN experiments: folds, training, model selection, results."""
