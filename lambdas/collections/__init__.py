"""Code the collections function groups share (analyzer, image_processor, embedder, search,
migrations): the pipeline's names and contract, the database connection and the embedders.

Bundled into those groups' assets only (infrastructure/constructs/bundling.py), so editing it
rebuilds none of the others. Importing the package loads nothing: `names` stays light enough for
the stacks.
"""
