"""The review page: a person listens to labeled recordings and gives verdicts, stored by db.reviews."""
