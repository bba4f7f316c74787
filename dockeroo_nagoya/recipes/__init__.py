"""One module per recipe; each declares its options and does its one job."""
