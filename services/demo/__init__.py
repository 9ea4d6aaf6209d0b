"""Demo data: the history generator and live simulator (`generator`) and resumable seeding (`seeding`)."""
