// kafkajs ships gzip only; snappy, lz4 and zstd are plugged in as its docs describe, with libraries
// that `npm ci` installs without building anything: snappy and zstd in JavaScript/WebAssembly, lz4
// through lz4-napi's prebuilt binaries (npm packages per platform).
'use strict'

const { CompressionCodecs, CompressionTypes } = require('kafkajs')
const SnappyCodec = require('kafkajs-snappy')
const lz4 = require('lz4-napi')
const { ZstdCodec } = require('zstd-codec')

const ZSTD_LEVEL = 3

// Kafka reads only LZ4 frames with independent blocks (it refuses others with "Dependent block
// stream is unsupported"); lz4-napi's frames have them, lz4js's do not.
const lz4Codec = () => ({
  async compress (encoder) {
    return lz4.compressFrame(encoder.buffer)
  },
  async decompress (buffer) {
    return lz4.decompressFrame(buffer)
  }
})

// zstd-codec loads its WebAssembly module asynchronously, once.
let zstdReady = null
function zstd () {
  if (zstdReady === null) {
    zstdReady = new Promise(resolve => ZstdCodec.run(binding => resolve(binding)))
  }
  return zstdReady
}

const zstdCodec = () => ({
  async compress (encoder) {
    const binding = await zstd()
    return Buffer.from(new binding.Simple().compress(encoder.buffer, ZSTD_LEVEL))
  },
  async decompress (buffer) {
    // Streaming: frames from other clients need not carry their decompressed size.
    const binding = await zstd()
    return Buffer.from(new binding.Streaming().decompress(buffer))
  }
})

function registerCodecs () {
  CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec
  CompressionCodecs[CompressionTypes.LZ4] = lz4Codec
  CompressionCodecs[CompressionTypes.ZSTD] = zstdCodec
}

module.exports = { registerCodecs }
