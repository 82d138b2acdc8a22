from soundtag.cli import main

main()
