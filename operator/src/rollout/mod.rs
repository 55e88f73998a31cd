//! RolloutRoute: progressive delivery at the routing layer.
