"""Follow-up scans: new, persisting, grown and resolved lesions between two sessions, and the ARIA-H grade."""
