"""Restoration of damaged artwork: classical operations (``classical``) that need no trained model.

Every operation takes and returns uint8 [H, W, 3] RGB images; masks are bool [H, W].
"""
