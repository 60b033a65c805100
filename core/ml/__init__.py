"""The ML data layer shared by mining, training and evaluation (README.md here). Pure: no Django."""
