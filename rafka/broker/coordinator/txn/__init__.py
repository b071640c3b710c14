"""The transaction coordinator: transactional ids and their state in `__transaction_state`."""
