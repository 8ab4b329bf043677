"""Pure ML functions (folds, splits, digests); they import pandas and scikit-learn, so import
them inside task bodies only."""
