"""Deploying a model: resolve an Approved package, deploy it, check the endpoint, record it, roll back."""
