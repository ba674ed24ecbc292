"""Data sets as they come: layouts, check, fix, split, import and synthetic cracks."""
