//! Target send rates over time.
