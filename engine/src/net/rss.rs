//! Receive-side scaling: the Toeplitz hash, as NICs compute it.
