"""The main job: `turnwise run` chains augment -> mix -> rm train -> rm eval + judges -> generate -> report."""
