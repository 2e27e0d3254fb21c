package sync_test

func str(s string) *string { return &s }
