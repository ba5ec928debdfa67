// The demo model's vocabulary and sequence shape (shared by scripts/train-demo.js and the demo).
'use strict'

const DEMO_WORDS = `apple river stone cloud tiger piano candle forest silver garden rocket window
  castle ocean pencil mirror dragon button lemon valley anchor jungle marble rabbit saddle planet
  violin harbor meadow falcon blanket copper desert engine feather glacier hammer island jacket kettle
  ladder magnet needle orange pepper quartz ribbon shadow tunnel umbrella velvet walnut yellow zebra
  bridge cactus dolphin eagle fossil guitar helmet igloo jelly koala lantern mango nectar otter parrot
  quiver rainbow spider tomato unicorn vessel wizard xylophone yogurt zipper acorn barrel cherry donkey
  ember fabric goblet hollow ivory jigsaw kitten lizard meteor noodle orchid pillow quilt raven salmon
  thunder urchin vortex willow basket comet dagger echo flute grape hornet iris jasmine kayak lobster
  mosaic nickel oyster pebble puzzle radar sponge trumpet tulip wagon`.split(/\s+/).filter(Boolean)

/** Training rows: BOS, L random words (MIN_REPEAT <= L <= HALF), the same L words again, then
 * fresh random words up to the context of 1 + 2 * HALF tokens. */
const HALF = 24
const MIN_REPEAT = 6

module.exports = { DEMO_WORDS, HALF, MIN_REPEAT }
