from wsi_engine.cli import run

run()
