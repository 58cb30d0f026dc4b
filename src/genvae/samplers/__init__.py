"""Post-hoc samplers (temporary placeholder in the vq branch: the samplers helper owns this file; replaced at merge)."""
